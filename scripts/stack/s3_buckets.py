"""Create the stack's S3 buckets ($MBT_S3_BUCKETS) on SeaweedFS when missing (idempotent)."""

from __future__ import annotations

import os


def main() -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=os.environ["MBT_S3_ENDPOINT_URL"],
                      aws_access_key_id=os.environ["MBT_S3_ACCESS_KEY"],
                      aws_secret_access_key=os.environ["MBT_S3_SECRET_KEY"],
                      region_name=os.environ.get("MBT_S3_REGION", "us-east-1"),
                      config=Config(retries={"max_attempts": 5, "mode": "standard"}))
    have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in filter(None, os.environ["MBT_S3_BUCKETS"].split(",")):
        if bucket not in have:
            s3.create_bucket(Bucket=bucket)
            print(f"[s3] created bucket {bucket}")


if __name__ == "__main__":
    main()
