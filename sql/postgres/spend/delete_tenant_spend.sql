-- purpose: forget the recorded spend of watched tenants without a priced invoice this period
DELETE FROM tenant_spend WHERE tenant_id = ANY(CAST(:tenant_ids AS text[]))
