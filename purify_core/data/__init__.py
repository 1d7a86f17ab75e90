"""Data: datasets and their seeded splits (`splits`), the on-disk readers (`readers`, `safe_pickle`,
`images`), the image set they all return (`image_set`) and the shifts used while fine-tuning (`augment`)."""
