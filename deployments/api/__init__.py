"""posray's HTTP edge, one module per resource; deployments/http_api.py assembles their routes."""
