"""Tasks of the ETL example declared in code: the support tickets, extracted from MongoDB."""


def setup(pipeline):
    # the tickets opened before the date (as_of, read as a date for the filter), spam left out;
    # only the fields the transform reads
    pipeline.mongo_task(
        "tickets",
        connection="support",
        collection="tickets",
        filter={"created_at": {"$lt": "$date:as_of"}, "channel": {"$ne": "spam"}},
        projection={
            "_id": 0,
            "ticket_id": 1,
            "customer_id": 1,
            "created_at": 1,
            "closed_at": 1,
            "status": 1,
            "priority": 1,
            "channel": 1,
        },
        params={"as_of": "2024-07-01"},
        product="data/tickets.parquet",
    )
