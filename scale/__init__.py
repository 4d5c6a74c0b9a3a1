"""Beyond one machine: the course's steps on Ray Data and OpenAI-compatible servers (see scale/README.md)."""
