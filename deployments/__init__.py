"""Ray Serve deployments doing the work: warm-model GPU replicas and the job runner.

Each module is a thin shell: models, pipeline stages and queue rules live in ``aisubs``.
"""
