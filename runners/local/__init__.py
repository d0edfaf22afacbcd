"""Local runs: Autoflow on a laptop, in this process, with no cluster and no database.

run.py   ``autoflow run``: a workflow from files, secrets from the environment or a file,
         an optional journal directory to resume from
"""
