"""What the gateway tells its operators: JSON logs, Prometheus metrics, and the observer hook they hang on."""
