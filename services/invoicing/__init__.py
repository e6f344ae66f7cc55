"""Invoicing (contract section 5): the invoice run, corrections, the lifecycle, previews, documents.

One package shared by the HTTP API, the CLI and the flows, split along its sections:

- `compute`      the pure core: `compute_invoice`, bounds (`check_fits`), `compute_correction`
- `catalog`      reading what a run prices (plans, subscription windows, usage, overrides)
- `generation`   the invoice run (`generate_invoices`) and its `invoice_run_transaction`
- `batches`      the run's pricing, batch by batch: read, price, COPY text
- `workers`      worker processes pricing a large run's batches on its snapshot
- `corrections`  draft adjustments and credit notes of closed invoices
- `numbering`    gapless numbers per (series, year)
- `lifecycle`    close and void (`close_drafts` is where every close happens)
- `finalize`     refresh and close the periods past their grace days
- `preview`      the upcoming invoice, nothing written
- `views`        invoices as the API, CLI and documents show them
- `documents`    HTML and PDF documents
- `reports`      what a run could not bill (usage without subscription, late usage)

Everything public is re-exported here, so `from services import invoicing` and
`from services.invoicing import generate_invoices` keep working.
"""

from services.invoicing.catalog import load_billable_windows, load_catalog
from services.invoicing.compute import (
    AmountOutOfRange,
    BillableWindow,
    DraftCorrection,
    DraftInvoice,
    DraftLine,
    MixedCurrencies,
    PlanTerms,
    QuotaTerms,
    UsageTotals,
    check_fits,
    compute_correction,
    compute_invoice,
)
from services.invoicing.corrections import CorrectionSummary, write_corrections
from services.invoicing.finalize import FinalizeResult, due_periods, finalize_invoices
from services.invoicing.generation import (
    INVOICE_LOCK_CLASS,
    UNPRICEABLE,
    GenerationResult,
    InvoiceSummary,
    generate_invoices,
    invoice_run_transaction,
)
from services.invoicing.lifecycle import (
    close_drafts,
    close_invoice,
    close_period_invoices,
    void_invoice,
)
from services.invoicing.numbering import NumberingRule
from services.invoicing.preview import (
    document_view,
    preview_invoice,
    upcoming_invoices,
    with_credit_lines,
)
from services.invoicing.reports import (
    LateUsage,
    UnsubscribedUsage,
    late_usage_in_closed_periods,
    unsubscribed_usage,
)
from services.invoicing.views import (
    InvoiceLineView,
    InvoicePreview,
    InvoiceView,
    get_invoice,
    list_invoices,
    total_after_credits,
)
from services.invoicing.workers import SERIAL, Parallelism

__all__ = [
    "INVOICE_LOCK_CLASS",
    "SERIAL",
    "UNPRICEABLE",
    "AmountOutOfRange",
    "BillableWindow",
    "CorrectionSummary",
    "DraftCorrection",
    "DraftInvoice",
    "DraftLine",
    "FinalizeResult",
    "GenerationResult",
    "InvoiceLineView",
    "InvoicePreview",
    "InvoiceSummary",
    "InvoiceView",
    "LateUsage",
    "MixedCurrencies",
    "NumberingRule",
    "Parallelism",
    "PlanTerms",
    "QuotaTerms",
    "UnsubscribedUsage",
    "UsageTotals",
    "check_fits",
    "close_drafts",
    "close_invoice",
    "close_period_invoices",
    "compute_correction",
    "compute_invoice",
    "document_view",
    "due_periods",
    "finalize_invoices",
    "generate_invoices",
    "get_invoice",
    "invoice_run_transaction",
    "late_usage_in_closed_periods",
    "list_invoices",
    "load_billable_windows",
    "load_catalog",
    "preview_invoice",
    "total_after_credits",
    "unsubscribed_usage",
    "upcoming_invoices",
    "void_invoice",
    "with_credit_lines",
    "write_corrections",
]
