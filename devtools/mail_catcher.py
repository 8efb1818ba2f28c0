"""The SMTP server of `make run`: aiosmtpd on loopback, keeping every message it receives as a file, so the demo's
mail (password resets, decisions, statements) can be read on the back office's mail page without a real relay.

    python devtools/mail_catcher.py [--port 8025] [--dir instance/mail]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class Catcher:
    """Writes each message to DIR/<time>-<n>.eml."""

    def __init__(self, folder: Path) -> None:
        """Keep messages in `folder` (created if missing)."""
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        """Store the message as it arrived."""
        self.count += 1
        (self.folder / f"{time.time_ns()}-{self.count}.eml").write_bytes(envelope.content)
        return "250 OK"


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default="instance/mail")
    args = parser.parse_args()
    controller = Controller(Catcher(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
