"""Keep every table asset as one Parquet file in the trace model's schema."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from datasets.traces import write_parquet_atomic


class ParquetTableIOManager(dg.ConfigurableIOManager):
    """Stores pyarrow Tables at ``<base_dir>/<asset key path>.parquet``, written atomically."""

    base_dir: str

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.base_dir, *key.path).with_suffix(".parquet")

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
        return pq.read_table(path)
