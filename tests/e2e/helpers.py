"""Re-exports the harness for test modules: `from helpers import ...`."""
from conftest import BIN, ROOT, Castgate, free_port, http, run_cli, wait_until  # noqa: F401
