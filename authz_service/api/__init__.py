"""The gRPC edge: servicers (thin), proto <-> model conversion, status mapping, interceptors.

Only this package (and clients/) imports grpc or generated `*_pb2` modules.
"""
