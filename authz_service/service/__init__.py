"""Use cases behind the API, free of gRPC: the servicers and the Envoy adapter call these."""
