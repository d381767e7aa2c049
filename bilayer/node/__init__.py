"""The node runtime: storage, peer links, ingestion and the process that ties them."""
