;; Chez Scheme shims for the SRFI-69 names the programs use.
(define (make-equal-hash-table) (make-hashtable equal-hash equal?))
(define (hash-table-set! h k v) (hashtable-set! h k v))
(define (hash-table-ref/default h k d) (hashtable-ref h k d))
