"""One render: recipe and pipeline in, MP4 with sound out; media encode, probe and compare."""
