"""A real SMTP server (aiosmtpd) on 127.0.0.1, for the tests and the reminders benchmark.

It accepts every message, refuses the recipients in `rejected_recipients` with a 550 (or
every recipient with `refuse_every_recipient_with`), and
can answer each MAIL, RCPT and DATA after `delay` seconds, or each message (its DATA)
after `message_delay` seconds, as a relay across a network would. It counts what it
accepts and, unless told not to (the benchmark, which should spend nothing on storing),
keeps each message.
"""

import asyncio
import threading
from contextlib import contextmanager


class SMTPSink:
    """What the SMTP server received, and how it should misbehave."""

    def __init__(self, *, keep_messages=True):
        self.host = "127.0.0.1"
        self.port = 0
        self.keep_messages = keep_messages
        self.messages = []
        self.count = 0
        self.rejected_recipients = set()
        self.refuse_every_recipient_with = ""  # e.g. "554 5.7.1 Relay access denied"
        self.delay = 0.0
        self.message_delay = 0.0
        self._lock = threading.Lock()

    @property
    def recipients(self):
        return [rcpt for message in self.messages for rcpt in message["rcpt_tos"]]

    # --- aiosmtpd's handler hooks ---------------------------------------------------------

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self._wait()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self._wait()
        if self.refuse_every_recipient_with:
            return self.refuse_every_recipient_with
        if address in self.rejected_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await self._wait()
        if self.message_delay:
            await asyncio.sleep(self.message_delay)
        with self._lock:
            self.count += 1
        if self.keep_messages:
            self.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "data": envelope.content.decode("utf-8", "replace"),
                }
            )
        return "250 Message accepted for delivery"

    async def _wait(self):
        if self.delay:
            await asyncio.sleep(self.delay)


@contextmanager
def running_smtp_sink(*, keep_messages=True):
    """Serve an `SMTPSink` on a port the OS picks, on a thread of this process."""
    from aiosmtpd.controller import Controller

    class EphemeralPortController(Controller):
        # aiosmtpd's start-up self-test connects to `self.port`, which is 0 until the
        # OS has picked the real one; point it at the port actually bound.
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    sink = SMTPSink(keep_messages=keep_messages)
    controller = EphemeralPortController(sink, hostname=sink.host, port=0)
    controller.start()
    sink.port = controller.server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        controller.stop()


# --- The same sink in a process of its own (the benchmark: a relay is not in our process) -


class _ControlledSink(SMTPSink):
    """Answers `NOOP count`, `NOOP reset` and `NOOP message-delay <s>` from its controller."""

    async def handle_NOOP(self, server, session, envelope, arg):
        words = arg.split()
        if words == ["count"]:
            return f"250 {self.count}"
        if words == ["reset"]:
            self.count = 0
            return "250 OK"
        if len(words) == 2 and words[0] == "message-delay":
            self.message_delay = float(words[1])
            return "250 OK"
        return "250 OK"


class SinkProcess:
    """A handle on a sink served by a child process: its address, count and delay."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def _command(self, *words):
        import smtplib

        with smtplib.SMTP(self.host, self.port, timeout=10) as client:
            code, reply = client.docmd("NOOP", " ".join(words))
        assert code == 250, (code, reply)
        return reply.decode()

    @property
    def count(self):
        return int(self._command("count"))

    def reset(self):
        self._command("reset")

    def set_message_delay(self, seconds):
        self._command("message-delay", str(seconds))


@contextmanager
def smtp_sink_process():
    """Serve a counting sink (keeping no message) from a child process; yields a SinkProcess."""
    import subprocess
    import sys
    from pathlib import Path

    child = subprocess.Popen(
        [sys.executable, "-m", "tests.smtp_sink"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        yield SinkProcess("127.0.0.1", port)
    finally:
        child.terminate()
        child.wait(timeout=10)


def _serve_forever():
    import signal
    import sys

    from aiosmtpd.controller import Controller

    class EphemeralPortController(Controller):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    sink = _ControlledSink(keep_messages=False)
    controller = EphemeralPortController(sink, hostname=sink.host, port=0)
    controller.start()
    print(controller.server.sockets[0].getsockname()[1], flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    _serve_forever()
