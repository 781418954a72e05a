"""What the apps' API modules share, so that they never import one another: pagination, the
file-download base view, and the error format (one exception handler and the serializers that
document it). The URLs that gather the apps' views stay outside, in webapp/api_urls.py: this
package imports no app."""
