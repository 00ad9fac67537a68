"""Create the local stack's S3 buckets in SeaweedFS (one-shot service in infra/docker-compose.yml).

Reads S3_ENDPOINT_URL, S3_ACCESS_KEY, S3_SECRET_KEY and S3_BUCKETS (comma separated) from the
environment, waits for the S3 API to answer, and creates each missing bucket. Idempotent.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name=os.environ.get("S3_REGION", "us-east-1"),
    )
    buckets = [b.strip() for b in os.environ["S3_BUCKETS"].split(",") if b.strip()]
    for attempt in range(60):
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            break
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500:  # wrong keys or a refused request: waiting will not help
                print(f"S3 refused the request: {exc.response.get('Error', {}).get('Code')}", file=sys.stderr)
                return 1
            print(f"waiting for S3 (HTTP {status}), attempt {attempt + 1}/60", flush=True)
        except EndpointConnectionError:
            print(f"waiting for S3 (no connection), attempt {attempt + 1}/60", flush=True)
        time.sleep(2)
    else:
        print("S3 did not answer in 120 s", file=sys.stderr)
        return 1
    for name in buckets:
        if name in existing:
            print(f"bucket {name} exists")
        else:
            s3.create_bucket(Bucket=name)
            print(f"bucket {name} created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
