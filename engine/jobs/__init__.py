"""The job queue: the worker thread, the job lifecycle, following a job's progress."""
