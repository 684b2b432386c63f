# Pinned versions shared by the scripts (sourced).
TORCH_VERSION=2.11.0
KAFKA_VERSION=4.1.1
