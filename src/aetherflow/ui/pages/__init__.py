"""The dashboard's pages, one module per thing a page serves.

Each handler is a plain function ``(dash, request) -> Response``; `create_app` binds the
`Dashboard` and routes the URL to it:

- `jobs`: ``/jobs``, the list, its filters and keyset pages
- `job`: ``/jobs/{id}``, one job (also the export of ``aetherflow show --html``), and
  ``/jobs/{id}/value``, one value of it in full
- `actions`: ``POST /jobs/{id}/cancel`` and ``/resume``
- `flows`: ``/flows`` and ``/flows/{name}``
- `workers`: ``/workers``
"""
