"""Attribution, trace building, import/export and the sample world; pure functions over Arrow tables."""
