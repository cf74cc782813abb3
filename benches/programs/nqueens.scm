(define (ok? row dist placed)
  (or (null? placed)
      (and (not (= (car placed) (+ row dist)))
           (not (= (car placed) (- row dist)))
           (not (= (car placed) row))
           (ok? row (+ dist 1) (cdr placed)))))
(define (queens n placed)
  (if (= (length placed) n) 1
      (let loop ((r 1) (total 0))
        (if (> r n) total
            (loop (+ r 1) (if (ok? r 1 placed) (+ total (queens n (cons r placed))) total))))))
(define (repeat k) (if (= k 1) (queens 10 '()) (begin (queens 10 '()) (repeat (- k 1)))))
(display (repeat 10)) (newline)
