//! ghr's HTTP surfaces: webhook endpoint, admin REST API, health and Prometheus metrics.
