"""The compute device: which device and dtype, and the one lease every GPU user takes."""
