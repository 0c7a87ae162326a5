"""Queue storage for the two Huey instances. The storage choice lives here and nowhere else."""
