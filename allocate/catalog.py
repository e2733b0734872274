"""The default VM catalog: EC2-inspired, not the paper's table (which was not available).

Prices are 2012-era Amazon EC2 us-east Linux on-demand list prices as recalled in the reference note, NOT
verified; speeds are EC2 compute units per vCPU (1 ECU = the reference vCPU the work is measured on).
The c1 types are the cheapest per unit of work, the m1 types cost the same per unit of work at different
sizes: that spread is what separates T_A^over from T_A^under.
"""

from allocate.model import Catalog, VmType

EC2_INSPIRED = Catalog(
    name="ec2-inspired-2012",
    vm_types=(
        VmType("m1.small", ncpu=1, cost_per_hour=0.08, speed=1.0),
        VmType("m1.medium", ncpu=1, cost_per_hour=0.16, speed=2.0),
        VmType("m1.large", ncpu=2, cost_per_hour=0.32, speed=2.0),
        VmType("m1.xlarge", ncpu=4, cost_per_hour=0.64, speed=2.0),
        VmType("c1.medium", ncpu=2, cost_per_hour=0.165, speed=2.5),
        VmType("c1.xlarge", ncpu=8, cost_per_hour=0.66, speed=2.5),
    ),
    bandwidth_bytes_per_second=125e6,
    note="EC2-inspired (2012 us-east on-demand prices as recalled, unverified); not the paper's catalog",
)


def default_catalog() -> Catalog:
    return EC2_INSPIRED
