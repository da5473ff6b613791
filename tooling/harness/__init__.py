"""Serve applications and Ray helpers for benchmarks and fault runs, never deployed in production:
a no-op app on the same ingress (the ceiling a benchmark compares against) and the fault targets
(a private Ray and posray to break)."""
