"""--soak's churn: short-lived client processes, each one request on a new connection,
started every few milliseconds for the whole soak next to the keep-alive load."""

import subprocess
import threading
import time

# The client each churn process runs; its process name labels its exchanges in /metrics.
CHURN_CLIENT = "curl"


class Churn:
    """Starts a curl every `every_ms` until stopped; counts the ones that got their answer."""

    def __init__(self, port, every_ms):
        self.port, self.every_s = port, every_ms / 1000
        self.started = self.ok = self.failed = 0
        self._running = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _spawn(self):
        url = f"http://127.0.0.1:{self.port}/?id=churn{self.started}"
        cmd = [CHURN_CLIENT, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url]
        self._running.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, text=True))
        self.started += 1

    def _reap(self, block=False):
        still = []
        for proc in self._running:
            if block or proc.poll() is not None:
                out, _ = proc.communicate()
                if proc.returncode == 0 and out.strip() == "200":
                    self.ok += 1
                else:
                    self.failed += 1
            else:
                still.append(proc)
        self._running = still

    def _run(self):
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._spawn()
            self._reap()
            next_at += self.every_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        """Stops starting processes and waits for the ones still running."""
        self._stop.set()
        self._thread.join()
        self._reap(block=True)
        return dict(every_ms=self.every_s * 1000, started=self.started, ok=self.ok, failed=self.failed)
