"""The memory budget: what a render needs (the memory model), what there is, and the profile that fits.

Entry points: `read_facts` (a pipeline's sizes from its files), `estimate` (peak device and
host bytes of one job), `room` (free memory now), `plan_job` (profile `auto` and the refusal
that names the cheapest fix).
"""
