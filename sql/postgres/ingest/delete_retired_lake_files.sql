-- purpose: forget retired lake files once they are in the trash
DELETE FROM lake_files_retired WHERE path = ANY(:paths)
