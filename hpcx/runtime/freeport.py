"""``python -m hpcx.runtime.freeport``: print a TCP port that is free on this host right now (for torchrun's rendezvous).

The port is found by binding port 0, so the operating system picks it; it is released before printing, so the
caller should bind it soon. hpcx.runtime avoids even that gap by keeping its store bound (see runtime.dist).
"""

import socket
import sys


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
    sys.exit(0)
