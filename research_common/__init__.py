"""Pieces both gRPC services share: errors, the compare rules, logging, the
interceptor and the server runtime. Nothing here imports mlflow or a database
driver."""
