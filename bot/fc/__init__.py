"""Everything Function Compute: the signed job envelope, the FC API client, the async runner that
re-invokes the function per job, the ``/jobs/run`` endpoint and the lifecycle hooks. Only
``bot.hosting`` reaches in here."""
