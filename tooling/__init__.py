"""The operator's and the developer's shell around posray: everything that is not the product's core.

The `posray` command (cli and the *_cli modules), the embedded servers `posray up` starts on a
machine with nothing configured, the benchmark and fault harnesses (bench/, faults*, harness/),
the terminal simulator and the demo, and `posray serve-config`. It may import everything
(posray, actors, deployments, jobs); nothing imports it back (import-linter contracts in
pyproject.toml, checked by the test suite).
"""
