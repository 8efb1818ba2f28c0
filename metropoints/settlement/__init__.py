"""Settlement: fee plans, monthly statements of used coupons, invoices through the payment provider, its webhooks."""
