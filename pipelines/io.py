"""Keep every table asset as one Parquet file in the trace model's schema, on local disk or object storage."""

import dagster as dg
import pyarrow as pa

from datasets.store import StoragePath, read_parquet, storage_path, write_parquet_atomic

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def run_partition_keys(context: dg.OutputContext | dg.InputContext) -> list[str] | None:
    """The first and last day of the run loading an input, from its tags.

    An asset check of a partitioned asset is asked to load every partition of it (Dagster has no
    partition-aware checks yet, dagster-io/dagster#17005); it must check what its run materialized,
    which the run's partition tags say (a single day, or a range as backfills launch it)."""
    if not isinstance(context, dg.InputContext) or not context.has_asset_partitions:
        return None
    tags = context.step_context.dagster_run.tags
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start:
        return None
    return [start] if end in (None, start) else [start, end]


class ParquetTableIOManager(dg.ConfigurableIOManager):
    """Stores pyarrow Tables at ``<base_dir>/<asset key path>.parquet``, written atomically.

    `base_dir` is a folder or an fsspec URL (``s3://bucket/prefix/assets``): with object storage, run
    pods launched separately (one Kubernetes Job per run) read each other's asset values. Credentials
    come from the filesystem's own environment variables (AWS_ACCESS_KEY_ID, ...), never from here.
    """

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> StoragePath:
        """``<key>.parquet``, or for a partitioned asset ``<key>/<day>.parquet`` (``<first>--<last>`` for a
        run over several days: the value of a range is one table, its context rows shared by its days)."""
        base = storage_path(self.base_dir).joinpath(*context.asset_key.path)
        if not context.has_asset_partitions:
            return base.with_suffix(".parquet")
        keys = run_partition_keys(context) or context.asset_partition_keys
        name = keys[0] if len(keys) == 1 else f"{keys[0]}--{keys[-1]}"
        return base / f"{name}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        if obj is None:
            return
        path = write_parquet_atomic(obj, self._path(context))
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)), "dagster/row_count": obj.num_rows}
        )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        path = self._path(context)
        if not path.exists():
            days = f" for {path.stem}" if context.has_asset_partitions else ""
            raise FileNotFoundError(
                f"{path}: asset {context.asset_key.to_user_string()} was never materialized{days}; "
                "materialize it for the same days first"
            )
        return read_parquet(path)
