"""The job queue: the worker thread, the job lifecycle, following a job's progress, and the worker
processes that share the queue (`aiprod-studio worker`, their supervisor, the sweep of dead workers' jobs)."""
