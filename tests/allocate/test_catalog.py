from allocate.catalog import default_catalog


def test_default_catalog_is_labelled_ec2_inspired_not_the_papers():
    catalog = default_catalog()
    assert "EC2-inspired" in catalog.note and "not the paper" in catalog.note
    assert catalog.max_cpus == 8
    prices = {t.name: t.cost_per_work_hour for t in catalog.vm_types}
    assert min(prices, key=prices.get).startswith("c1")  # the compute types are the cheapest work
