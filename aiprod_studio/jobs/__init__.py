"""The job records: the SQLite history that is also the queue, and who owns a running job."""
