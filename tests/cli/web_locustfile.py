"""A minimal locustfile for CLI tests: steady GETs against a plain local web server."""

from locust import FastHttpUser, constant, task


class WebUser(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def index(self) -> None:
        self.client.get("/", name="GET /")
