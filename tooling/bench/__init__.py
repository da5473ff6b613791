"""`posray bench`: a load generator for the ingest path with an exactly-once check afterwards."""
