//! Regenerates the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml
//! --example gen_corpus`. Codec seeds are the inputs of the message vectors
//! in `spec-vectors/basic/`; machine seeds are chosen by a seeded random
//! search for inputs whose decoded ops cover the interesting sequences
//! (connect, a line or frame on a connected slot, a frame over the limit,
//! EOF, flush, reset, commands). Deterministic: the same files every run.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use twill_core::rng::seeded;
use twill_core::testing::load_vectors;
use twill_fuzz::{ops, Op};

fn features(ops: &[Op]) -> BTreeSet<&'static str> {
    let mut f = BTreeSet::new();
    let mut accepted = [false; 3];
    for op in ops {
        match op {
            Op::Accept(s) => {
                accepted[usize::from(s % 3)] = true;
                f.insert("accept");
            }
            Op::Data(s, d) if accepted[usize::from(s % 3)] => {
                f.insert("data");
                if d.contains(&b'\n') {
                    f.insert("data-newline");
                }
                if d.len() > 32 {
                    f.insert("data-long");
                }
                if d.first().is_some_and(u8::is_ascii_digit) {
                    f.insert("data-digit");
                }
            }
            Op::Data(..) => {
                f.insert("data-unknown");
            }
            Op::Eof(s) if accepted[usize::from(s % 3)] => {
                f.insert("eof");
            }
            Op::Sent(s, _) if accepted[usize::from(s % 3)] => {
                f.insert("sent");
            }
            Op::Closed(s) if accepted[usize::from(s % 3)] => {
                f.insert("closed");
            }
            Op::Advance(_) => {
                f.insert("advance");
            }
            Op::Send(s, _) if accepted[usize::from(s % 3)] => {
                f.insert("send");
            }
            Op::Close(s) if accepted[usize::from(s % 3)] => {
                f.insert("close");
            }
            _ => {}
        }
    }
    f
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");

    // Codec seeds from the message vectors.
    let vectors = load_vectors(root.join("../spec-vectors/basic")).expect("vectors load");
    for v in &vectors {
        let (Some(cases), Some(codec)) = (v.cases(), v.header("codec")) else {
            continue;
        };
        let stem = Path::new(&v.name).file_stem().unwrap().to_string_lossy();
        for case in cases {
            write(
                &corpus.join(codec),
                &format!("{stem}-{}", case.line),
                &case.input,
            );
        }
    }

    // Machine seeds: greedy cover of features by seeded random inputs.
    let mut rng = seeded(0x7317);
    let mut candidates: Vec<(Vec<u8>, BTreeSet<&'static str>)> = Vec::new();
    for _ in 0..20_000 {
        let len = 32 + (rng.next_u32() % 480) as usize;
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        // Sprinkle line feeds and digits so payloads look like frames.
        for b in data.iter_mut() {
            match rng.next_u32() % 16 {
                0 => *b = b'\n',
                1 => *b = b'0' + (rng.next_u32() % 10) as u8,
                2 => *b = b':',
                _ => {}
            }
        }
        let f = features(&ops(&data));
        candidates.push((data, f));
    }
    let mut covered: BTreeSet<&'static str> = BTreeSet::new();
    let mut chosen = Vec::new();
    while chosen.len() < 6 {
        let best = candidates
            .iter()
            .enumerate()
            .max_by_key(|(_, (d, f))| {
                (
                    f.difference(&covered).count(),
                    f.len(),
                    usize::MAX - d.len(),
                )
            })
            .map(|(i, _)| i)
            .unwrap();
        let (data, f) = candidates.swap_remove(best);
        covered.extend(f.iter().copied());
        println!("seed {}: {} bytes, {:?}", chosen.len(), data.len(), f);
        chosen.push(data);
    }
    for target in ["framed_machine", "chat_machine"] {
        for (i, data) in chosen.iter().enumerate() {
            write(&corpus.join(target), &format!("seed-{i}"), data);
        }
    }
}
