"""What the apps' API modules share, so that they never import one another: pagination, the
file-download base view, the error format (one exception handler and the serializers that
document it) and the /api/ URLs."""
