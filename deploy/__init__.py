"""Deployment: the Docker image and compose file, and the native topology (``deploy.topology``)."""
