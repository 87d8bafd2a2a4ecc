"""Stateful local stand-ins for remote APIs, served over real loopback sockets in tests,
the benchmark and the demo. They speak the real wire formats, so the code under test
is the code that runs in production."""
