"""halb: a highly available control-plane endpoint for on-prem Kubernetes installs."""

__version__ = "0.1.0"
