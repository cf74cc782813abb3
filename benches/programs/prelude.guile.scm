;; Guile: SRFI-69 hash tables, plus the one name SRFI-69 lacks.
(use-modules (srfi srfi-69))
(define (make-equal-hash-table) (make-hash-table equal?))
