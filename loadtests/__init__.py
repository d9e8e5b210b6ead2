"""Load tests of the heating-fee payment peak (issue 6): Locust scenarios, data preparation, the consistency
audit and the runner behind ``make loadtest``. See loadtests/README.md."""
