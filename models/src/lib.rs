//! Layers with backward, the paper's networks, datasets, optimisers, the trainer and the `smoothout` program will live here; nothing is implemented yet.
