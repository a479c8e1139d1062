"""UDP echo checked with Python's socket module: several datagrams of
different sizes each come back unchanged from the same address.

Usage: udp_echo.py HOST PORT
"""
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for size in (0, 1, 100, 1400, 8000):
        msg = bytes((i * 7 + size) % 256 for i in range(size))
        s.sendto(msg, (host, port))
        data, addr = s.recvfrom(65536)
        if data != msg or addr[1] != port:
            print(f"size {size}: got {len(data)} bytes from {addr}", file=sys.stderr)
            return 1
    print("udp echo ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
