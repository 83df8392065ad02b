"""API routes, one module per area; each defines `router` (an APIRouter)."""
