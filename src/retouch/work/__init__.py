"""The unit of work and what a worker process builds to run it.

``item.process`` reads an input, edits it, writes the output and describes it; ``runner`` holds the entry points
the pools call (a sync edit, an item of a task); ``context`` is what each worker process builds once. Nothing
here imports the service or the API: the executors call down into it.
"""
