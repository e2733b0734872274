"""Keep every table asset as one Parquet file in the trace model's schema, on local disk or object storage."""

import dagster as dg
import pyarrow as pa

from datasets.traces import StoragePath, read_parquet, storage_path, write_parquet_atomic


class ParquetTableIOManager(dg.ConfigurableIOManager):
    """Stores pyarrow Tables at ``<base_dir>/<asset key path>.parquet``, written atomically.

    `base_dir` is a folder or an fsspec URL (``s3://bucket/prefix/assets``): with object storage, run
    pods launched separately (one Kubernetes Job per run) read each other's asset values. Credentials
    come from the filesystem's own environment variables (AWS_ACCESS_KEY_ID, ...), never from here.
    """

    base_dir: str

    def _path(self, key: dg.AssetKey) -> StoragePath:
        return storage_path(self.base_dir).joinpath(*key.path).with_suffix(".parquet")

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        if obj is None:
            return
        path = write_parquet_atomic(obj, self._path(context.asset_key))
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)), "dagster/row_count": obj.num_rows}
        )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        path = self._path(context.asset_key)
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: asset {context.asset_key.to_user_string()} was never materialized"
            )
        return read_parquet(path)
