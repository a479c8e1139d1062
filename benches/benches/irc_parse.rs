//! IRC message parsing: twill-irc beside the `irc-proto` crate on the same
//! corpus of tagged and untagged lines (server traffic as a client sees
//! it: PRIVMSGs with and without IRCv3 tags, numerics, JOIN/PART/QUIT,
//! MODE, PING).
//!
//! Both parse every line and touch the command and last parameter.
//! `irc-proto` parses a `&str` into owned `String`s; twill parses a
//! `Bytes` line into ranges of it (no copy, no allocation).
//!
//! Run: `cd benches && cargo bench --bench irc_parse && python3 report.py irc_parse`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const LINES: &[&str] = &[
    ":nick!user@host.example.com PRIVMSG #channel :Hello there, how is everyone doing today?",
    "@time=2023-01-05T12:34:56.789Z;msgid=abc123;account=nick :nick!user@host.example.com PRIVMSG #channel :tagged hello",
    ":irc.example.net 001 me :Welcome to the Example Internet Relay Chat Network me",
    ":irc.example.net 353 me = #channel :@op +voice alice bob carol dave eve mallory trent",
    "PING :irc.example.net",
    ":alice!a@10.0.0.1 JOIN #channel",
    "@time=2023-01-05T12:35:00.000Z;batch=xyz :bob!b@example.org QUIT :Quit: leaving now",
    ":op!o@example.org MODE #channel +ov alice bob",
    "@+draft/reply=abc123;+example.com/emoji=\\:smile\\: :carol!c@h PRIVMSG #channel :thanks!",
    ":dave!d@h NOTICE me :\u{1}VERSION twill 0.1\u{1}",
    ":irc.example.net 005 me CHANTYPES=# EXCEPTS INVEX CHANMODES=eIbq,k,flj,CFLMPQScgimnprstz CHANLIMIT=#:120 PREFIX=(ov)@+ MAXLIST=bqeI:100 MODES=4 NETWORK=example :are supported by this server",
    ":eve!e@h PART #channel :bye",
];

fn corpus() -> Vec<String> {
    (0..1000)
        .map(|i| LINES[i % LINES.len()].to_string())
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = corpus();
    let bytes: usize = lines.iter().map(String::len).sum();
    // twill parses lines as `Bytes` (as its line reader hands them out).
    let owned: Vec<Bytes> = lines.iter().map(|l| Bytes::from(l.clone())).collect();
    let mut g = c.benchmark_group("irc_parse");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("irc-proto", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                let m: irc_proto::Message = std::hint::black_box(l.as_str()).parse().unwrap();
                n += match &m.command {
                    irc_proto::Command::PRIVMSG(_, t) => t.len(),
                    _ => 1,
                };
            }
            n
        })
    });
    g.bench_function("twill", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &owned {
                let m = twill_irc::Message::parse(std::hint::black_box(l.clone())).unwrap();
                n += if m.is("PRIVMSG") {
                    m.last().map_or(0, <[u8]>::len)
                } else {
                    1
                };
            }
            n
        })
    });
    g.finish();

    // Tags read: the value of `time` (irc-proto unescapes every tag).
    let tagged: Vec<&String> = lines.iter().filter(|l| l.starts_with('@')).collect();
    let tagged_b: Vec<Bytes> = tagged.iter().map(|l| Bytes::from((*l).clone())).collect();
    let tb: usize = tagged.iter().map(|l| l.len()).sum();
    let mut g = c.benchmark_group("irc_parse_tags");
    g.throughput(Throughput::Bytes(tb as u64));
    g.bench_function("irc-proto", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &tagged {
                let m: irc_proto::Message = l.as_str().parse().unwrap();
                n += m
                    .tags
                    .as_ref()
                    .map_or(0, |t| t.iter().filter(|t| t.0 == "time").count());
            }
            n
        })
    });
    g.bench_function("twill", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &tagged_b {
                let m = twill_irc::Message::parse(l.clone()).unwrap();
                n += usize::from(m.tag("time").is_some());
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
