"""The metering-and-billing service (issue 4): readings, tariffs, billing runs, receivables, late fees,
reminders and the residents' cached bill lookups. Package ``billing``; service name
``metering-and-billing`` (folder, image, chart key, consumer group, database ``metering_and_billing``)."""

__version__ = "0.1.0"
